_ollamactl_completion() {
    local IFS=$'
'
    COMPREPLY=( $( env COMP_WORDS="${COMP_WORDS[*]}" \
                   COMP_CWORD=$COMP_CWORD \
                   _OLLAMACTL_COMPLETE=complete_bash $1 ) )
    if [[ ${COMP_WORDS[COMP_CWORD]} != [\"\']* ]]; then  # quoted for the shell, unless in a quote
        local i
        for i in "${!COMPREPLY[@]}"; do printf -v "COMPREPLY[i]" %q "${COMPREPLY[i]}"; done
    fi
    return 0
}

complete -o default -F _ollamactl_completion ollamactl
