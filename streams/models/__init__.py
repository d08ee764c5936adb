"""Online models: item and user vectors, the HNSW index, candidates, ranker and re-ranking."""
