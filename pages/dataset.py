"""The Dataset page."""

import streamlit as st

st.title("Dataset")
