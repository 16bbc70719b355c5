# Sourced by the bench scripts: `need PROGRAM=PACKAGE…` installs, with
# apt-get, the packages of the programs that are not on PATH.
need() {
    local pkgs=() spec
    for spec in "$@"; do
        command -v "${spec%%=*}" >/dev/null || pkgs+=("${spec#*=}")
    done
    [ ${#pkgs[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
}
