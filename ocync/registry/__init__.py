"""The distribution client: profiles, auth, counted and rate-controlled requests, streaming
blob copy. Everything here does I/O under trio, except the pure request rules
(``exchange.py``), origins (``origin.py``), the request ledger (``requeststats.py``),
credentials (``credentials.py``) and the token flow (``tokens.py``); the
transports (``transport.py``) put httpx (control plane) and h11 on trio streams (blob bodies,
``wire.py``) behind one interface; parsing lives in :mod:`ocync.oci`.

API (what the engine and the CLI use)::

    from ocync.registry.client import ClientSettings, RegistryClient
    from ocync.registry.pool import ClientPool
    from ocync.registry.auth import AuthSettings
    settings = ClientSettings(auth=AuthSettings(kind="basic", username="u", password="pat"),
                              profile="ghcr", rate_limit=None, max_concurrent=None,
                              insecure=False, rate_share=None, attempts=5)
    async with ClientPool(controllers=None) as pool:        # shares one ControllerRegistry
        client = await pool.client("ghcr.io" | "127.0.0.1:5000" | "http://host:port", settings)
        # same host + credential identity -> same PrincipalController (client.principal)
        await client.ping()                                  # -> bool
        await client.list_tags(repo)                         # -> list[str], Link pagination
        await client.head_manifest(repo, tag_or_digest)      # -> ManifestHead(digest, media_type, size) | None
        await client.get_manifest(repo, tag_or_digest)       # -> oci.manifest.Manifest (raw, media_type, digest, parsed)
        await client.put_manifest(repo, tag_or_digest, raw, media_type)  # -> Digest
        await client.head_blob(repo, digest)                 # -> size | None
        await client.mount_blob(repo, digest, from_repo)     # -> MountResult(mounted, session | None)
        await client.start_upload(repo)                      # -> UploadSession
        await client.cancel_upload(session)                  # best-effort DELETE
        await client.referrers(repo, digest, artifact_type=None)  # -> list[Descriptor] | None (None: unsupported)
        async with client.open_blob(repo, digest) as stream: # BlobStream: .content_length, .chunks()
        client.want_push(repo)                               # ask pull,push tokens up front
        client.want_repository(repo)                         # multi-scope tokens ask it too
        client.statistics()                                  # ClientStatistics (by_kind, by_status, bytes, throttled...)
        client.profile                                       # RegistryProfile (profiles.py): upload_strategy,
                                                             # mount_scope, mount_probe_ok, window_groups, ...
        pool.statistics()                                    # sum(client statistics, ClientStatistics())

    from ocync.registry.blobs import copy_blob_to, push_blob, restart_on_temporary, upload_blob
    await copy_blob_to(src, src_repo, descriptor, dst, dst_repo, session=None)  # -> attempts used
        # one source GET per attempt, digest verified before the committing request;
        # temporary failures restart with a fresh GET and a fresh session (restart_on_temporary)
    await upload_blob(client, repo, descriptor, chunks, session=None, verify=True)  # one attempt
    await push_blob(client, repo, descriptor, open_chunks, session=None)  # restarts; open_chunks() -> AsyncIterable

Copying a whole image (``ocync copy``) is the engine's: :mod:`ocync.engine.singlecopy`.
"""
