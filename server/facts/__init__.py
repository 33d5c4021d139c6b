"""Facts about a document that several rules need, computed once per document."""
