from python_mcp_server.cli import main

main()
