"""Sightline: monitoring for production AI systems. Everything here runs without Streamlit."""
