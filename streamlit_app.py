"""Retrain Studio: the dashboard's entry point (router and shared frame)."""

import streamlit as st

st.set_page_config(page_title="Retrain Studio", page_icon=":material/photo_library:", layout="wide")
st.title("Retrain Studio")
st.write("Retrain the last layer of a pretrained image network on a folder of photos.")
