#compdef ollamactl

_ollamactl_completion() {
  setopt local_options rc_quotes  # '' is a quote in descriptions
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _OLLAMACTL_COMPLETE=complete_zsh ollamactl)
}

compdef _ollamactl_completion ollamactl
if [[ $funcstack[1] == _ollamactl ]]; then
  _ollamactl_completion "$@"  # autoloaded from $fpath: complete this TAB too
fi
