"""The Kubernetes objects of an EKS stack's serving slice, as plain data.

Pure (no Pulumi): `serving.py` decides every name and number from the plan, `objects.py` and
`scaling.py` build the manifests, `manifest.py` lists them per model for the Pulumi component,
`modelfleet render` and the tests.
"""
