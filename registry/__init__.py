"""registry/: OCI references and oci-layout directories -> verified LockedApps on disk."""
