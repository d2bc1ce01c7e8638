"""paperchat for other tools: one typed service over the pipeline (service.py), an MCP server (mcp_server.py) and
the OpenAI chat-completions translation (openai_compat.py). No web framework here; ui/ mounts the HTTP routes."""
