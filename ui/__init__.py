"""The dashboard's UI layer: Streamlit caches, shared state and `render_*` helpers.

Everything that touches `streamlit` outside the page scripts lives here, so
`engine/` stays free of it.
"""
