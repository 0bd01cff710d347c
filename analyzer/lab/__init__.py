"""Real flannel-style clusters in network namespaces: build, record, dump, tear down."""
