"""Fixes are data (what to replace, what comment to insert, which import to add);
`apply` turns them into new text and minimal edits at the edge."""
