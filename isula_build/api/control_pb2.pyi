import datetime

from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BuildRequest(_message.Message):
    __slots__ = ("buildID", "buildType", "contextDir", "fileContent", "output", "buildArgs", "proxy", "iidfile", "buildStatic", "additionalTag", "capAddList", "entityID", "encrypted", "format", "noCache", "compression", "progress", "target", "buildContexts", "platform", "cacheTo", "cacheFrom", "secrets", "ssh")
    BUILDID_FIELD_NUMBER: _ClassVar[int]
    BUILDTYPE_FIELD_NUMBER: _ClassVar[int]
    CONTEXTDIR_FIELD_NUMBER: _ClassVar[int]
    FILECONTENT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    BUILDARGS_FIELD_NUMBER: _ClassVar[int]
    PROXY_FIELD_NUMBER: _ClassVar[int]
    IIDFILE_FIELD_NUMBER: _ClassVar[int]
    BUILDSTATIC_FIELD_NUMBER: _ClassVar[int]
    ADDITIONALTAG_FIELD_NUMBER: _ClassVar[int]
    CAPADDLIST_FIELD_NUMBER: _ClassVar[int]
    ENTITYID_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    NOCACHE_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    BUILDCONTEXTS_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    CACHETO_FIELD_NUMBER: _ClassVar[int]
    CACHEFROM_FIELD_NUMBER: _ClassVar[int]
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    SSH_FIELD_NUMBER: _ClassVar[int]
    buildID: str
    buildType: str
    contextDir: str
    fileContent: str
    output: str
    buildArgs: _containers.RepeatedScalarFieldContainer[str]
    proxy: bool
    iidfile: str
    buildStatic: BuildStatic
    additionalTag: str
    capAddList: _containers.RepeatedScalarFieldContainer[str]
    entityID: str
    encrypted: bool
    format: str
    noCache: bool
    compression: str
    progress: bool
    target: str
    buildContexts: _containers.RepeatedScalarFieldContainer[str]
    platform: str
    cacheTo: str
    cacheFrom: _containers.RepeatedScalarFieldContainer[str]
    secrets: _containers.RepeatedCompositeFieldContainer[BuildSecret]
    ssh: SSHForwardSpec
    def __init__(self, buildID: _Optional[str] = ..., buildType: _Optional[str] = ..., contextDir: _Optional[str] = ..., fileContent: _Optional[str] = ..., output: _Optional[str] = ..., buildArgs: _Optional[_Iterable[str]] = ..., proxy: _Optional[bool] = ..., iidfile: _Optional[str] = ..., buildStatic: _Optional[_Union[BuildStatic, _Mapping]] = ..., additionalTag: _Optional[str] = ..., capAddList: _Optional[_Iterable[str]] = ..., entityID: _Optional[str] = ..., encrypted: _Optional[bool] = ..., format: _Optional[str] = ..., noCache: _Optional[bool] = ..., compression: _Optional[str] = ..., progress: _Optional[bool] = ..., target: _Optional[str] = ..., buildContexts: _Optional[_Iterable[str]] = ..., platform: _Optional[str] = ..., cacheTo: _Optional[str] = ..., cacheFrom: _Optional[_Iterable[str]] = ..., secrets: _Optional[_Iterable[_Union[BuildSecret, _Mapping]]] = ..., ssh: _Optional[_Union[SSHForwardSpec, _Mapping]] = ...) -> None: ...

class BuildSecret(_message.Message):
    __slots__ = ("id", "wrappedKey", "nonce", "sealed")
    ID_FIELD_NUMBER: _ClassVar[int]
    WRAPPEDKEY_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    id: str
    wrappedKey: bytes
    nonce: bytes
    sealed: bytes
    def __init__(self, id: _Optional[str] = ..., wrappedKey: _Optional[bytes] = ..., nonce: _Optional[bytes] = ..., sealed: _Optional[bytes] = ...) -> None: ...

class SSHForwardSpec(_message.Message):
    __slots__ = ("ids", "token")
    IDS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    token: str
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., token: _Optional[str] = ...) -> None: ...

class SSHFrame(_message.Message):
    __slots__ = ("buildID", "token", "conn", "id", "data", "close")
    BUILDID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CONN_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    buildID: str
    token: str
    conn: int
    id: str
    data: bytes
    close: bool
    def __init__(self, buildID: _Optional[str] = ..., token: _Optional[str] = ..., conn: _Optional[int] = ..., id: _Optional[str] = ..., data: _Optional[bytes] = ..., close: _Optional[bool] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("blob", "step")
    BLOB_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    blob: BlobProgress
    step: StepTime
    def __init__(self, blob: _Optional[_Union[BlobProgress, _Mapping]] = ..., step: _Optional[_Union[StepTime, _Mapping]] = ...) -> None: ...

class BlobProgress(_message.Message):
    __slots__ = ("id", "done", "total", "seconds")
    ID_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    done: int
    total: int
    seconds: float
    def __init__(self, id: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class StepTime(_message.Message):
    __slots__ = ("step", "seconds")
    STEP_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    step: int
    seconds: float
    def __init__(self, step: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class BuildStatic(_message.Message):
    __slots__ = ("buildTime",)
    BUILDTIME_FIELD_NUMBER: _ClassVar[int]
    buildTime: _timestamp_pb2.Timestamp
    def __init__(self, buildTime: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BuildResponse(_message.Message):
    __slots__ = ("imageID",)
    IMAGEID_FIELD_NUMBER: _ClassVar[int]
    imageID: str
    def __init__(self, imageID: _Optional[str] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ("buildID",)
    BUILDID_FIELD_NUMBER: _ClassVar[int]
    buildID: str
    def __init__(self, buildID: _Optional[str] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("content", "progress")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    content: str
    progress: Progress
    def __init__(self, content: _Optional[str] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ...) -> None: ...

class ImportRequest(_message.Message):
    __slots__ = ("importID", "source", "reference", "progress")
    IMPORTID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    importID: str
    source: str
    reference: str
    progress: bool
    def __init__(self, importID: _Optional[str] = ..., source: _Optional[str] = ..., reference: _Optional[str] = ..., progress: _Optional[bool] = ...) -> None: ...

class ImportResponse(_message.Message):
    __slots__ = ("log", "progress")
    LOG_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    log: str
    progress: Progress
    def __init__(self, log: _Optional[str] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("imageName",)
    IMAGENAME_FIELD_NUMBER: _ClassVar[int]
    imageName: str
    def __init__(self, imageName: _Optional[str] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("images",)
    class ImageInfo(_message.Message):
        __slots__ = ("repository", "tag", "id", "created", "size")
        REPOSITORY_FIELD_NUMBER: _ClassVar[int]
        TAG_FIELD_NUMBER: _ClassVar[int]
        ID_FIELD_NUMBER: _ClassVar[int]
        CREATED_FIELD_NUMBER: _ClassVar[int]
        SIZE_FIELD_NUMBER: _ClassVar[int]
        repository: str
        tag: str
        id: str
        created: str
        size: str
        def __init__(self, repository: _Optional[str] = ..., tag: _Optional[str] = ..., id: _Optional[str] = ..., created: _Optional[str] = ..., size: _Optional[str] = ...) -> None: ...
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[ListResponse.ImageInfo]
    def __init__(self, images: _Optional[_Iterable[_Union[ListResponse.ImageInfo, _Mapping]]] = ...) -> None: ...

class TagRequest(_message.Message):
    __slots__ = ("image", "tag")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    image: str
    tag: str
    def __init__(self, image: _Optional[str] = ..., tag: _Optional[str] = ...) -> None: ...

class VersionResponse(_message.Message):
    __slots__ = ("version", "goVersion", "gitCommit", "buildTime", "osArch")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    GOVERSION_FIELD_NUMBER: _ClassVar[int]
    GITCOMMIT_FIELD_NUMBER: _ClassVar[int]
    BUILDTIME_FIELD_NUMBER: _ClassVar[int]
    OSARCH_FIELD_NUMBER: _ClassVar[int]
    version: str
    goVersion: str
    gitCommit: str
    buildTime: str
    osArch: str
    def __init__(self, version: _Optional[str] = ..., goVersion: _Optional[str] = ..., gitCommit: _Optional[str] = ..., buildTime: _Optional[str] = ..., osArch: _Optional[str] = ...) -> None: ...

class RemoveRequest(_message.Message):
    __slots__ = ("imageID", "all", "prune")
    IMAGEID_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    PRUNE_FIELD_NUMBER: _ClassVar[int]
    imageID: _containers.RepeatedScalarFieldContainer[str]
    all: bool
    prune: bool
    def __init__(self, imageID: _Optional[_Iterable[str]] = ..., all: _Optional[bool] = ..., prune: _Optional[bool] = ...) -> None: ...

class RemoveResponse(_message.Message):
    __slots__ = ("layerMessage",)
    LAYERMESSAGE_FIELD_NUMBER: _ClassVar[int]
    layerMessage: str
    def __init__(self, layerMessage: _Optional[str] = ...) -> None: ...

class HealthCheckResponse(_message.Message):
    __slots__ = ("status",)
    class ServingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[HealthCheckResponse.ServingStatus]
        SERVING: _ClassVar[HealthCheckResponse.ServingStatus]
        NOT_SERVING: _ClassVar[HealthCheckResponse.ServingStatus]
    UNKNOWN: HealthCheckResponse.ServingStatus
    SERVING: HealthCheckResponse.ServingStatus
    NOT_SERVING: HealthCheckResponse.ServingStatus
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: HealthCheckResponse.ServingStatus
    def __init__(self, status: _Optional[_Union[HealthCheckResponse.ServingStatus, str]] = ...) -> None: ...

class LoginRequest(_message.Message):
    __slots__ = ("server", "username", "password")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    server: str
    username: str
    password: str
    def __init__(self, server: _Optional[str] = ..., username: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class LoginResponse(_message.Message):
    __slots__ = ("content",)
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    content: str
    def __init__(self, content: _Optional[str] = ...) -> None: ...

class LogoutRequest(_message.Message):
    __slots__ = ("server", "all")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    server: str
    all: bool
    def __init__(self, server: _Optional[str] = ..., all: _Optional[bool] = ...) -> None: ...

class LogoutResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: str
    def __init__(self, result: _Optional[str] = ...) -> None: ...

class SeparatorLoad(_message.Message):
    __slots__ = ("app", "dir", "base", "lib", "skipCheck", "enabled")
    APP_FIELD_NUMBER: _ClassVar[int]
    DIR_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    LIB_FIELD_NUMBER: _ClassVar[int]
    SKIPCHECK_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    app: str
    dir: str
    base: str
    lib: str
    skipCheck: bool
    enabled: bool
    def __init__(self, app: _Optional[str] = ..., dir: _Optional[str] = ..., base: _Optional[str] = ..., lib: _Optional[str] = ..., skipCheck: _Optional[bool] = ..., enabled: _Optional[bool] = ...) -> None: ...

class LoadRequest(_message.Message):
    __slots__ = ("path", "loadID", "sep", "progress")
    PATH_FIELD_NUMBER: _ClassVar[int]
    LOADID_FIELD_NUMBER: _ClassVar[int]
    SEP_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    path: str
    loadID: str
    sep: SeparatorLoad
    progress: bool
    def __init__(self, path: _Optional[str] = ..., loadID: _Optional[str] = ..., sep: _Optional[_Union[SeparatorLoad, _Mapping]] = ..., progress: _Optional[bool] = ...) -> None: ...

class LoadResponse(_message.Message):
    __slots__ = ("log", "progress")
    LOG_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    log: str
    progress: Progress
    def __init__(self, log: _Optional[str] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ...) -> None: ...

class PushRequest(_message.Message):
    __slots__ = ("pushID", "imageName", "format", "progress", "compression")
    PUSHID_FIELD_NUMBER: _ClassVar[int]
    IMAGENAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    pushID: str
    imageName: str
    format: str
    progress: bool
    compression: str
    def __init__(self, pushID: _Optional[str] = ..., imageName: _Optional[str] = ..., format: _Optional[str] = ..., progress: _Optional[bool] = ..., compression: _Optional[str] = ...) -> None: ...

class PushResponse(_message.Message):
    __slots__ = ("response", "progress")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    response: str
    progress: Progress
    def __init__(self, response: _Optional[str] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ...) -> None: ...

class PullRequest(_message.Message):
    __slots__ = ("pullID", "imageName", "progress", "platform")
    PULLID_FIELD_NUMBER: _ClassVar[int]
    IMAGENAME_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    pullID: str
    imageName: str
    progress: bool
    platform: str
    def __init__(self, pullID: _Optional[str] = ..., imageName: _Optional[str] = ..., progress: _Optional[bool] = ..., platform: _Optional[str] = ...) -> None: ...

class PullResponse(_message.Message):
    __slots__ = ("response", "progress")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    response: str
    progress: Progress
    def __init__(self, response: _Optional[str] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ...) -> None: ...

class SeparatorSave(_message.Message):
    __slots__ = ("base", "lib", "rename", "dest", "enabled")
    BASE_FIELD_NUMBER: _ClassVar[int]
    LIB_FIELD_NUMBER: _ClassVar[int]
    RENAME_FIELD_NUMBER: _ClassVar[int]
    DEST_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    base: str
    lib: str
    rename: str
    dest: str
    enabled: bool
    def __init__(self, base: _Optional[str] = ..., lib: _Optional[str] = ..., rename: _Optional[str] = ..., dest: _Optional[str] = ..., enabled: _Optional[bool] = ...) -> None: ...

class SaveRequest(_message.Message):
    __slots__ = ("saveID", "images", "path", "format", "sep", "progress")
    SAVEID_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SEP_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    saveID: str
    images: _containers.RepeatedScalarFieldContainer[str]
    path: str
    format: str
    sep: SeparatorSave
    progress: bool
    def __init__(self, saveID: _Optional[str] = ..., images: _Optional[_Iterable[str]] = ..., path: _Optional[str] = ..., format: _Optional[str] = ..., sep: _Optional[_Union[SeparatorSave, _Mapping]] = ..., progress: _Optional[bool] = ...) -> None: ...

class SaveResponse(_message.Message):
    __slots__ = ("log", "progress")
    LOG_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    log: str
    progress: Progress
    def __init__(self, log: _Optional[str] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ...) -> None: ...

class MemData(_message.Message):
    __slots__ = ("memTotal", "memFree", "swapTotal", "swapFree")
    MEMTOTAL_FIELD_NUMBER: _ClassVar[int]
    MEMFREE_FIELD_NUMBER: _ClassVar[int]
    SWAPTOTAL_FIELD_NUMBER: _ClassVar[int]
    SWAPFREE_FIELD_NUMBER: _ClassVar[int]
    memTotal: int
    memFree: int
    swapTotal: int
    swapFree: int
    def __init__(self, memTotal: _Optional[int] = ..., memFree: _Optional[int] = ..., swapTotal: _Optional[int] = ..., swapFree: _Optional[int] = ...) -> None: ...

class MemStat(_message.Message):
    __slots__ = ("memSys", "heapSys", "heapAlloc", "heapInUse", "heapIdle", "heapReleased")
    MEMSYS_FIELD_NUMBER: _ClassVar[int]
    HEAPSYS_FIELD_NUMBER: _ClassVar[int]
    HEAPALLOC_FIELD_NUMBER: _ClassVar[int]
    HEAPINUSE_FIELD_NUMBER: _ClassVar[int]
    HEAPIDLE_FIELD_NUMBER: _ClassVar[int]
    HEAPRELEASED_FIELD_NUMBER: _ClassVar[int]
    memSys: int
    heapSys: int
    heapAlloc: int
    heapInUse: int
    heapIdle: int
    heapReleased: int
    def __init__(self, memSys: _Optional[int] = ..., heapSys: _Optional[int] = ..., heapAlloc: _Optional[int] = ..., heapInUse: _Optional[int] = ..., heapIdle: _Optional[int] = ..., heapReleased: _Optional[int] = ...) -> None: ...

class StorageData(_message.Message):
    __slots__ = ("storageDriver", "storageBackingFs")
    STORAGEDRIVER_FIELD_NUMBER: _ClassVar[int]
    STORAGEBACKINGFS_FIELD_NUMBER: _ClassVar[int]
    storageDriver: str
    storageBackingFs: str
    def __init__(self, storageDriver: _Optional[str] = ..., storageBackingFs: _Optional[str] = ...) -> None: ...

class RegistryData(_message.Message):
    __slots__ = ("registriesSearch", "registriesInsecure", "registriesBlock")
    REGISTRIESSEARCH_FIELD_NUMBER: _ClassVar[int]
    REGISTRIESINSECURE_FIELD_NUMBER: _ClassVar[int]
    REGISTRIESBLOCK_FIELD_NUMBER: _ClassVar[int]
    registriesSearch: _containers.RepeatedScalarFieldContainer[str]
    registriesInsecure: _containers.RepeatedScalarFieldContainer[str]
    registriesBlock: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, registriesSearch: _Optional[_Iterable[str]] = ..., registriesInsecure: _Optional[_Iterable[str]] = ..., registriesBlock: _Optional[_Iterable[str]] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ("verbose",)
    VERBOSE_FIELD_NUMBER: _ClassVar[int]
    verbose: bool
    def __init__(self, verbose: _Optional[bool] = ...) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("memInfo", "storageInfo", "registryInfo", "dataRoot", "runRoot", "OCIRuntime", "builderNum", "goRoutines", "memStat", "experimental", "buildCacheSize")
    MEMINFO_FIELD_NUMBER: _ClassVar[int]
    STORAGEINFO_FIELD_NUMBER: _ClassVar[int]
    REGISTRYINFO_FIELD_NUMBER: _ClassVar[int]
    DATAROOT_FIELD_NUMBER: _ClassVar[int]
    RUNROOT_FIELD_NUMBER: _ClassVar[int]
    OCIRUNTIME_FIELD_NUMBER: _ClassVar[int]
    BUILDERNUM_FIELD_NUMBER: _ClassVar[int]
    GOROUTINES_FIELD_NUMBER: _ClassVar[int]
    MEMSTAT_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENTAL_FIELD_NUMBER: _ClassVar[int]
    BUILDCACHESIZE_FIELD_NUMBER: _ClassVar[int]
    memInfo: MemData
    storageInfo: StorageData
    registryInfo: RegistryData
    dataRoot: str
    runRoot: str
    OCIRuntime: str
    builderNum: int
    goRoutines: int
    memStat: MemStat
    experimental: bool
    buildCacheSize: int
    def __init__(self, memInfo: _Optional[_Union[MemData, _Mapping]] = ..., storageInfo: _Optional[_Union[StorageData, _Mapping]] = ..., registryInfo: _Optional[_Union[RegistryData, _Mapping]] = ..., dataRoot: _Optional[str] = ..., runRoot: _Optional[str] = ..., OCIRuntime: _Optional[str] = ..., builderNum: _Optional[int] = ..., goRoutines: _Optional[int] = ..., memStat: _Optional[_Union[MemStat, _Mapping]] = ..., experimental: _Optional[bool] = ..., buildCacheSize: _Optional[int] = ...) -> None: ...

class CacheListRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CacheListResponse(_message.Message):
    __slots__ = ("entries", "totalSize")
    class Entry(_message.Message):
        __slots__ = ("id", "step", "size", "lastUsed", "inUse")
        ID_FIELD_NUMBER: _ClassVar[int]
        STEP_FIELD_NUMBER: _ClassVar[int]
        SIZE_FIELD_NUMBER: _ClassVar[int]
        LASTUSED_FIELD_NUMBER: _ClassVar[int]
        INUSE_FIELD_NUMBER: _ClassVar[int]
        id: str
        step: str
        size: int
        lastUsed: _timestamp_pb2.Timestamp
        inUse: bool
        def __init__(self, id: _Optional[str] = ..., step: _Optional[str] = ..., size: _Optional[int] = ..., lastUsed: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., inUse: _Optional[bool] = ...) -> None: ...
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    TOTALSIZE_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[CacheListResponse.Entry]
    totalSize: int
    def __init__(self, entries: _Optional[_Iterable[_Union[CacheListResponse.Entry, _Mapping]]] = ..., totalSize: _Optional[int] = ...) -> None: ...

class CachePruneRequest(_message.Message):
    __slots__ = ("all", "keepStorage")
    ALL_FIELD_NUMBER: _ClassVar[int]
    KEEPSTORAGE_FIELD_NUMBER: _ClassVar[int]
    all: bool
    keepStorage: int
    def __init__(self, all: _Optional[bool] = ..., keepStorage: _Optional[int] = ...) -> None: ...

class CachePruneResponse(_message.Message):
    __slots__ = ("entriesRemoved", "spaceReclaimed")
    ENTRIESREMOVED_FIELD_NUMBER: _ClassVar[int]
    SPACERECLAIMED_FIELD_NUMBER: _ClassVar[int]
    entriesRemoved: int
    spaceReclaimed: int
    def __init__(self, entriesRemoved: _Optional[int] = ..., spaceReclaimed: _Optional[int] = ...) -> None: ...

class ManifestCreateRequest(_message.Message):
    __slots__ = ("manifestList", "manifests")
    MANIFESTLIST_FIELD_NUMBER: _ClassVar[int]
    MANIFESTS_FIELD_NUMBER: _ClassVar[int]
    manifestList: str
    manifests: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, manifestList: _Optional[str] = ..., manifests: _Optional[_Iterable[str]] = ...) -> None: ...

class ManifestCreateResponse(_message.Message):
    __slots__ = ("imageID",)
    IMAGEID_FIELD_NUMBER: _ClassVar[int]
    imageID: str
    def __init__(self, imageID: _Optional[str] = ...) -> None: ...

class ManifestAnnotateRequest(_message.Message):
    __slots__ = ("manifestList", "manifest", "arch", "os", "osFeatures", "variant")
    MANIFESTLIST_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    OSFEATURES_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    manifestList: str
    manifest: str
    arch: str
    os: str
    osFeatures: _containers.RepeatedScalarFieldContainer[str]
    variant: str
    def __init__(self, manifestList: _Optional[str] = ..., manifest: _Optional[str] = ..., arch: _Optional[str] = ..., os: _Optional[str] = ..., osFeatures: _Optional[_Iterable[str]] = ..., variant: _Optional[str] = ...) -> None: ...

class ManifestInspectRequest(_message.Message):
    __slots__ = ("manifestList",)
    MANIFESTLIST_FIELD_NUMBER: _ClassVar[int]
    manifestList: str
    def __init__(self, manifestList: _Optional[str] = ...) -> None: ...

class ManifestInspectResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ManifestPushRequest(_message.Message):
    __slots__ = ("manifestList", "dest")
    MANIFESTLIST_FIELD_NUMBER: _ClassVar[int]
    DEST_FIELD_NUMBER: _ClassVar[int]
    manifestList: str
    dest: str
    def __init__(self, manifestList: _Optional[str] = ..., dest: _Optional[str] = ...) -> None: ...

class ManifestPushResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: str
    def __init__(self, result: _Optional[str] = ...) -> None: ...
