# bash completion for owlsync: commands, options, the job and table names of
# the configuration (-c FILE, else $OWLSYNC_CONFIG, else /etc/owlsync/owlsync.ini),
# bundle files and paths. Installed as .../bash-completion/completions/owlsync.

# Prints the names of the configuration's [KIND NAME] sections, one a line.
_owlsync_sections()
{
    local kind=$1 file=$2 line re
    [[ -f $file && -r $file ]] || return 0
    re="^[[:space:]]*\\[[[:space:]]*${kind}[[:space:]]+([^]]*[^][:space:]])[[:space:]]*\\]"
    while IFS= read -r line; do
        [[ $line =~ $re ]] && printf '%s\n' "${BASH_REMATCH[1]}"
    done <"$file"
    return 0
}

# Completes cur from words; a comma-separated list completes its last item.
_owlsync_list()
{
    local cur=$1 words=$2 head=""
    if [[ $cur == *,* ]]; then
        head=${cur%,*},
        cur=${cur##*,}
    fi
    mapfile -t COMPREPLY < <(compgen -P "$head" -W "$words" -- "$cur")
}

_owlsync_files()
{
    compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(compgen -f -- "$1")
}

_owlsync_dirs()
{
    compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(compgen -d -- "$1")
}

# Bundles (*.owlb) and directories to find them in.
_owlsync_bundles()
{
    compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(compgen -d -- "$1"; compgen -f -X '!*.owlb' -- "$1")
}

_owlsync()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local config=${OWLSYNC_CONFIG:-/etc/owlsync/owlsync.ini} cmd="" i
    local commands="keygen export convert verify inspect import daemon status retry check"

    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        -c | --config)
            ((i++))
            config=${COMP_WORDS[i]}
            ;;
        --config=*) config=${COMP_WORDS[i]#--config=} ;;
        -*) ;;
        *)
            cmd=${COMP_WORDS[i]}
            break
            ;;
        esac
    done
    # -c FILE may follow the command as well
    for ((i++; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        -c | --config)
            ((i++))
            ((i < COMP_CWORD)) && config=${COMP_WORDS[i]}
            ;;
        --config=*) config=${COMP_WORDS[i]#--config=} ;;
        esac
    done
    # shellcheck disable=SC2088 # a literal ~/ as typed on the command line
    [[ $config == "~/"* ]] && config=$HOME/${config#"~/"}

    if [[ -z $cmd ]]; then
        case $prev in
        -c | --config)
            _owlsync_files "$cur"
            return
            ;;
        esac
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W "-c --config -h --help -V --version" -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "$commands" -- "$cur")
        fi
        return
    fi

    case $prev in
    -c | --config)
        _owlsync_files "$cur"
        return
        ;;
    esac
    local opts="-c --config"
    case $cmd in
    keygen)
        case $prev in -o | --output) _owlsync_files "$cur"; return ;; esac
        opts="$opts -o --output -e --encryption"
        ;;
    export)
        case $prev in
        -j | --job)
            _owlsync_list "$cur" "$(_owlsync_sections export "$config")"
            return
            ;;
        -t | --tables)
            _owlsync_list "$cur" "$(_owlsync_sections table "$config")"
            return
            ;;
        -d | --datasets) return ;;
        -o | --outbox)
            _owlsync_dirs "$cur"
            return
            ;;
        esac
        opts="$opts -j --job -d --datasets -t --tables -o --outbox -f --force -q --quiet"
        ;;
    convert)
        case $prev in
        -j | --job)
            _owlsync_list "$cur" "$(_owlsync_sections export "$config")"
            return
            ;;
        -o | --outbox)
            _owlsync_dirs "$cur"
            return
            ;;
        --from-vendor-json)
            _owlsync_files "$cur"
            return
            ;;
        esac
        opts="$opts --from-vendor-json -j --job -o --outbox"
        ;;
    verify)
        case $prev in -k | --key | -K | --decrypt-key) _owlsync_files "$cur"; return ;; esac
        opts="$opts -k --key -K --decrypt-key"
        ;;
    inspect) opts="$opts --json --all-datasets" ;;
    import) opts="$opts --dry-run --json --allow-rollback --all-datasets" ;;
    status | check) opts="$opts --json" ;;
    retry) ;;
    daemon) ;;
    *) return ;;
    esac

    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$opts -h --help" -- "$cur")
        return
    fi
    case $cmd in
    verify | inspect | import | check) _owlsync_bundles "$cur" ;;
    retry) _owlsync_files "$cur" ;;
    esac
}
complete -F _owlsync owlsync
