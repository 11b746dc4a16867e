"""The HTTP client for registries (Docker Registry HTTP API v2 / OCI distribution).

One module a job: `settings.py` (the plain registry settings everything here takes),
`names.py` (a reference → registry, repository, tag), `config.py` (which registries are
searched, insecure, blocked), `tls.py` (certs.d), `credentials.py` (auth.json), `auth.py`
(challenges, bearer tokens, basic), `client.py` (requests: manifests, blobs, uploads),
`connect.py` (a client under the settings, the login check), `blobinfo.py` (what a layer's
compressed blob is called where), `gzipper.py` (parallel gzip), `pipeline.py` (a pulled layer
decompressed and checked as it streams). Pull and push themselves are in distribution/.
"""
