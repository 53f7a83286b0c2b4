"""The dashboard's Streamlit-side helpers: engine caching, the sidebar, charts and trace views.

Pages stay thin (layout and widgets); anything that is not about Streamlit
lives in ``taelio_core`` instead.
"""
