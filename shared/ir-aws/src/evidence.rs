//! Evidence: collect-evidence into the Object Lock bucket.
