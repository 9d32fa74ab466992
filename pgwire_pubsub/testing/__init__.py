"""Tools for testing at the wire: throwaway PostgreSQL clusters, a fake backend, a fault proxy."""
