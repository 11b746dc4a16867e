"""Images moved between the store and registries, above the transports and the registry client.

`pull.py` (registry → store, a short name tried under each registries.search entry), `push.py`
(store → registry), `lists.py` (manifest lists as the store keeps them), `manifests.py` (list
entries read from remote images, and a list pushed with every image it names). Each takes the
store and the `RegistrySettings` (registry/settings.py) it needs, not the daemon.
"""
