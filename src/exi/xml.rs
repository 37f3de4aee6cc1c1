//! XML rendering (placeholder).
