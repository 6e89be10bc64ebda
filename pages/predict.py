"""The Predict page."""

import streamlit as st

st.title("Predict")
