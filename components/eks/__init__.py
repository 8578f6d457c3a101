"""The EKS platform: cluster, nodes, identities, add-ons, controllers and GPU capacity.

Every name and derived value comes from `modelfleet.eks` (the plan); these components wire.
"""
