"""Building a run from the composed config: instantiation, resolvers, composition outside
Hydra, launch checks and the batch layout."""
