//! The container runtime: runs OCI containers with runc.
