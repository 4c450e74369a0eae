//! `portcullis serve` and the proxy, end to end.
