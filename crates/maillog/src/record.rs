//! Message records (correlation by queue id).
