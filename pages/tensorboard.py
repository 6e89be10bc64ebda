"""The TensorBoard page."""

import streamlit as st

st.title("TensorBoard")
