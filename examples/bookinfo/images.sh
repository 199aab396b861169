#!/usr/bin/env bash
# Builds the Bookinfo demo's images from this host's own installed files, with no registry:
#
#   examples/bookinfo/images.sh          # idempotent: a few seconds when nothing changed
#
#   localhost/bookinfo/python:1.0        Debian's python3 and stdlib, pg8000 and redis from PyPI
#   localhost/bookinfo/{productpage,details,reviews,ratings}:1.0
#                                        that plus examples/demo/common.py and one service
#   localhost/bookinfo/postgres:15       Debian's PostgreSQL 15 server (initdb at first start)
#   localhost/bookinfo/redis:7           Debian's redis-server (and redis-cli)
#
# Each image's root filesystem is a tarball of the host's files (the binaries, their shared
# libraries as ldd lists them, the data files they read), imported with `podman import`; the
# four services are then `podman build` layers on the python image. The tarballs are cached in
# BOOKINFO_CACHE/rootfs (see env.sh), keyed by the installed package versions and this
# script, so a rebuild after `podman system reset` (or `rm -rf $BOOKINFO_CACHE/storage`) is
# an import; an image whose build key matches is not touched at all.
#
# Needs root, podman (+ runc, netavark), python3 with pip, postgresql (15), redis-server, and
# PyPI (pg8000, redis) on the first build. BOOKINFO_INSTALL=1 apt-installs what is missing.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=env.sh
. "$HERE/env.sh"

APT_PACKAGES=(podman runc netavark aardvark-dns iptables iproute2 podman-compose python3 python3-pip
              postgresql redis-server curl graphviz)
PIP_PACKAGES=(pg8000==1.31.6 redis==5.2.1)
PY=/usr/bin/python3.11
PGBIN=/usr/lib/postgresql/15/bin

missing=()
command -v podman >/dev/null || missing+=(podman runc netavark aardvark-dns iptables)
command -v podman-compose >/dev/null || missing+=(podman-compose)
[[ -x $PY ]] || missing+=(python3)
$PY -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
[[ -x $PGBIN/postgres ]] || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
    if [[ ${BOOKINFO_INSTALL:-} == 1 ]]; then
        apt-get update >&2 && apt-get install -y "${APT_PACKAGES[@]}" >&2
    else
        echo "images.sh: missing ${missing[*]}; run with BOOKINFO_INSTALL=1, or:" >&2
        echo "  apt-get update && apt-get install -y ${APT_PACKAGES[*]}" >&2
        exit 1
    fi
fi

STAGE=
cleanup() { [[ -z $STAGE ]] || rm -rf "$STAGE"; }
trap cleanup EXIT

# Hash of its arguments (strings) and of what their version commands print: a cache key.
key() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }
versions() { dpkg-query -W -f '${Package}=${Version}\n' "$@" 2>/dev/null || true; }
SELF=$(sha256sum "$0" "$HERE/env.sh" | cut -c1-64)

# Copies files into the stage at the same path, dereferenced (symlinks to files become files).
add() {
    local p
    for p; do
        mkdir -p "$STAGE$(dirname "$p")"
        cp -L --preserve=mode,timestamps "$p" "$STAGE$p"
    done
}
# Copies the shared libraries (and the loader) the given ELF files link, as ldd resolves them.
add_libs() {
    local libs
    libs=$(for f; do ldd "$f" 2>/dev/null || true; done \
        | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
    # shellcheck disable=SC2086
    add $libs
}
# A fresh stage: Debian's merged /usr layout, /tmp, and users root plus "$@" (name:uid).
new_stage() {
    STAGE=$(mktemp -d "$BOOKINFO_CACHE/stage.XXXXXX")
    chmod 755 "$STAGE"
    mkdir -p "$STAGE"/{usr/bin,usr/sbin,usr/lib,usr/lib64,etc,tmp,root,dev,proc,sys,run}
    chmod 1777 "$STAGE/tmp"
    ln -s usr/bin "$STAGE/bin"; ln -s usr/sbin "$STAGE/sbin"
    ln -s usr/lib "$STAGE/lib"; ln -s usr/lib64 "$STAGE/lib64"
    echo "root:x:0:0:root:/root:/bin/sh" >"$STAGE/etc/passwd"
    echo "root:x:0:" >"$STAGE/etc/group"
    local u
    for u; do
        echo "${u%%:*}:x:${u#*:}:${u#*:}:${u%%:*}:/nonexistent:/bin/sh" >>"$STAGE/etc/passwd"
        echo "${u%%:*}:x:${u#*:}:" >>"$STAGE/etc/group"
    done
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$STAGE/etc/nsswitch.conf"
}
# Packs the stage into the cache (atomically) and forgets it.
pack() {
    mkdir -p "$BOOKINFO_CACHE/rootfs"
    tar -C "$STAGE" --numeric-owner -cf "$1.part" .
    mv -f "$1.part" "$1"
    rm -rf "$STAGE"
    STAGE=
}
# Build keys live in the image's commit message (imports) or an annotation (builds), not in a
# label: adi's service map shows an image's labels, and they should say only what the demo means.
imported_key() { podman image inspect --format '{{.Comment}}' "$1" 2>/dev/null || true; }
built_key() {
    podman image inspect --format '{{index .Annotations "app.bookinfo/build"}}' "$1" 2>/dev/null || true
}
say() { echo "images.sh: $*" >&2; }

# --- python: the interpreter, its stdlib and the extension modules' libraries, pip packages.
PY_KEY=$(key "$SELF" "${PIP_PACKAGES[*]}" "$(versions python3.11-minimal libpython3.11-minimal \
    libpython3.11-stdlib libc6 libssl3 libffi8 zlib1g libexpat1)")
PY_TAR=$BOOKINFO_CACHE/rootfs/python-$PY_KEY.tar
PIP_KEY=$(key "${PIP_PACKAGES[*]}" "$($PY -VV)")
if [[ $(imported_key localhost/bookinfo/python:1.0) != "build $PY_KEY" ]]; then
    if [[ ! -s $PY_TAR ]]; then
        say "building the python rootfs"
        SITE=$BOOKINFO_CACHE/pip-$PIP_KEY
        if [[ ! -d $SITE ]]; then
            $PY -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
                --no-warn-script-location --target "$SITE.part" "${PIP_PACKAGES[@]}"
            rm -rf "$SITE" && mv "$SITE.part" "$SITE"
        fi
        new_stage
        add "$PY"
        ln -s python3.11 "$STAGE/usr/bin/python3"
        # The stdlib without what only builds or installs Python (and Debian's sitecustomize
        # link into /etc is dereferenced by add).
        tar -C / --exclude='usr/lib/python3.11/config-*' --exclude=usr/lib/python3.11/ensurepip \
            --exclude=usr/lib/python3.11/lib2to3 --exclude=usr/lib/python3.11/idlelib \
            --exclude=usr/lib/python3.11/sitecustomize.py -cf - usr/lib/python3.11 \
            | tar -C "$STAGE" -xf -
        [[ ! -e /usr/lib/python3.11/sitecustomize.py ]] || add /usr/lib/python3.11/sitecustomize.py
        add_libs "$PY" /usr/lib/python3.11/lib-dynload/*.so
        mkdir -p "$STAGE/usr/local/lib/python3.11"
        cp -a "$SITE" "$STAGE/usr/local/lib/python3.11/dist-packages"
        mkdir -p "$STAGE/app"
        pack "$PY_TAR"
    fi
    say "importing localhost/bookinfo/python:1.0"
    podman import --quiet \
        --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PYTHONUNBUFFERED=1' --change 'ENV PYTHONDONTWRITEBYTECODE=1' \
        --change 'ENV PYTHONPATH=/app' --change 'WORKDIR /app' \
        --change 'CMD ["python3"]' --message "build $PY_KEY" \
        "$PY_TAR" localhost/bookinfo/python:1.0 >/dev/null
fi

# --- the four services: the demo's JSON helpers, the Bookinfo ones, one service each.
for svc in productpage details reviews ratings; do
    files=("$ROOT/examples/demo/common.py" "$HERE/services/bookinfo.py" "$HERE/services/$svc.py")
    SVC_KEY=$(key "$PY_KEY" "$(cat "${files[@]}" | sha256sum)")
    [[ $(built_key "localhost/bookinfo/$svc:1.0") == "$SVC_KEY" ]] && continue
    say "building localhost/bookinfo/$svc:1.0"
    STAGE=$(mktemp -d "$BOOKINFO_CACHE/stage.XXXXXX")
    cp "${files[@]}" "$STAGE/"
    cat >"$STAGE/Containerfile" <<EOF
FROM localhost/bookinfo/python:1.0
COPY common.py bookinfo.py $svc.py /app/
EXPOSE 9080
CMD ["python3", "/app/$svc.py"]
EOF
    podman build --quiet --pull=never --layers=false --identity-label=false \
        --annotation "app.bookinfo/build=$SVC_KEY" -t "localhost/bookinfo/$svc:1.0" "$STAGE" >/dev/null
    rm -rf "$STAGE"
    STAGE=
done

# --- postgres: the server, initdb and pg_ctl, their modules and share files, a shell (initdb
# runs the server through /bin/sh, and the entrypoint is a script), `locale` (initdb lists the
# locales).
PG_KEY=$(key "$SELF" "$(sha256sum "$HERE/postgres-entrypoint.sh")" \
    "$(versions postgresql-15 libc6 libc-bin libicu72 libssl3 dash tzdata)")
PG_TAR=$BOOKINFO_CACHE/rootfs/postgres-$PG_KEY.tar
if [[ $(imported_key localhost/bookinfo/postgres:15) != "build $PG_KEY" ]]; then
    if [[ ! -s $PG_TAR ]]; then
        say "building the postgres rootfs"
        new_stage postgres:999
        add "$PGBIN/postgres" "$PGBIN/initdb" "$PGBIN/pg_ctl" /bin/dash /usr/bin/locale
        ln -s dash "$STAGE/usr/bin/sh"
        # Server modules (plpgsql, snowball dictionaries, ...), without the JIT (LLVM) ones.
        mkdir -p "$STAGE/usr/lib/postgresql/15/lib"
        find /usr/lib/postgresql/15/lib -maxdepth 1 -name '*.so' ! -name 'llvmjit*' \
            -exec cp -L --preserve=mode,timestamps -t "$STAGE/usr/lib/postgresql/15/lib" {} +
        mkdir -p "$STAGE/usr/share/postgresql" "$STAGE/usr/share"
        cp -rL --preserve=mode,timestamps /usr/share/postgresql/15 "$STAGE/usr/share/postgresql/"
        cp -rL --preserve=mode,timestamps /usr/share/zoneinfo "$STAGE/usr/share/"
        add_libs "$PGBIN/postgres" "$PGBIN/initdb" "$PGBIN/pg_ctl" /bin/dash /usr/bin/locale \
            "$STAGE"/usr/lib/postgresql/15/lib/*.so
        install -D -m 755 "$HERE/postgres-entrypoint.sh" "$STAGE/usr/local/bin/postgres-entrypoint"
        mkdir -p "$STAGE/var/lib/postgresql" "$STAGE/var/run/postgresql"
        chown 999:999 "$STAGE/var/lib/postgresql" "$STAGE/var/run/postgresql"
        pack "$PG_TAR"
    fi
    say "importing localhost/bookinfo/postgres:15"
    podman import --quiet \
        --change 'ENV PATH=/usr/local/bin:/usr/lib/postgresql/15/bin:/usr/bin:/bin' \
        --change 'ENV PGDATA=/var/lib/postgresql/data' --change 'ENV TZ=UTC' \
        --change 'USER postgres' --change 'EXPOSE 5432' --change 'STOPSIGNAL SIGINT' \
        --change 'CMD ["/usr/local/bin/postgres-entrypoint"]' \
        --message "build $PG_KEY" \
        "$PG_TAR" localhost/bookinfo/postgres:15 >/dev/null
fi

# --- redis: the server and redis-cli (run.sh reads the cache's hit and miss counters).
RD_KEY=$(key "$SELF" "$(versions redis-server redis-tools libc6 libjemalloc2 libssl3)")
RD_TAR=$BOOKINFO_CACHE/rootfs/redis-$RD_KEY.tar
if [[ $(imported_key localhost/bookinfo/redis:7) != "build $RD_KEY" ]]; then
    if [[ ! -s $RD_TAR ]]; then
        say "building the redis rootfs"
        new_stage redis:998
        # redis-server is a link to redis-check-rdb, which acts by the name it is run as.
        add "$(command -v redis-server)" "$(command -v redis-cli)"
        add_libs "$(command -v redis-server)" "$(command -v redis-cli)"
        mkdir -p "$STAGE/data" && chown 998:998 "$STAGE/data"
        pack "$RD_TAR"
    fi
    say "importing localhost/bookinfo/redis:7"
    podman import --quiet --change 'ENV PATH=/usr/bin:/bin' --change 'USER redis' \
        --change 'WORKDIR /data' --change 'EXPOSE 6379' \
        --change 'CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no", "--dir", "/data"]' \
        --message "build $RD_KEY" \
        "$RD_TAR" localhost/bookinfo/redis:7 >/dev/null
fi

# Old builds' tarballs and pip downloads, dangling images.
find "$BOOKINFO_CACHE/rootfs" -name '*.tar' ! -name "python-$PY_KEY.tar" \
    ! -name "postgres-$PG_KEY.tar" ! -name "redis-$RD_KEY.tar" -delete 2>/dev/null || true
find "$BOOKINFO_CACHE" -maxdepth 1 -name 'pip-*' ! -name "pip-$PIP_KEY" \
    -exec rm -rf {} + 2>/dev/null || true
# (twice: an old base image is dangling only once the old images built on it are gone)
podman image prune --force >/dev/null 2>&1 || true
podman image prune --force >/dev/null 2>&1 || true
