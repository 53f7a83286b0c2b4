"""Streamlit-side helpers for the dashboard's pages (the core never imports Streamlit)."""
