"""Commands that connect ollamactl to other tools: export_cmd (LiteLLM, nginx, HAProxy and JSON
configuration), completion_cmd (bash, zsh and fish completion), simulate_cmd (loopback Ollama
servers for trying things out).
"""
