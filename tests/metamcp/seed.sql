-- MetaMCP's configuration for the end-to-end suite, as the UI would leave it: one
-- namespace, one endpoint on it without any auth, and stdio servers mapped ACTIVE.
-- psql variables (all required, set by run.sh): everything2, twin, stubborn, time (booleans:
-- which extra servers this scenario has), stubborn_dir (the stubborn server's package),
-- max_attempts (MetaMCP's MCP_MAX_ATTEMPTS setting, '' for its default of 1: the first
-- crash marks a server ERROR).
-- No SESSION_LIFETIME row: MetaMCP's default, sessions never expire (the leak).
\set ON_ERROR_STOP on

SELECT :'max_attempts' <> '' AS set_max_attempts \gset
\if :set_max_attempts
INSERT INTO config (id, value, description) VALUES
    ('MCP_MAX_ATTEMPTS', :'max_attempts', 'set by the mcpinit end-to-end suite');
\endif

INSERT INTO namespaces (name, description) VALUES ('e2e', 'mcpinit end-to-end suite');

INSERT INTO endpoints (name, description, namespace_uuid,
                       enable_api_key_auth, use_query_param_auth, enable_oauth)
SELECT 'e2e', 'no auth', uuid, false, false, false FROM namespaces WHERE name = 'e2e';

-- What MetaMCP users configure most: a Node server through npx. prefer_offline keeps
-- npm from asking the registry on every spawn once the package is cached.
INSERT INTO mcp_servers (name, type, command, args, env) VALUES
    ('everything', 'STDIO', 'npx', ARRAY['-y', '@modelcontextprotocol/server-everything'],
     '{"npm_config_prefer_offline": "true"}');

-- A second server of the same package with its own command line (so its own key).
\if :everything2
INSERT INTO mcp_servers (name, type, command, args, env) VALUES
    ('everything2', 'STDIO', 'npx', ARRAY['-y', '@modelcontextprotocol/server-everything', 'stdio'],
     '{"npm_config_prefer_offline": "true"}');
\endif

-- The same command line as 'everything' with its own environment, as two accounts of
-- one server would be (two tokens): mcpinit sees one key for both servers.
\if :twin
INSERT INTO mcp_servers (name, type, command, args, env) VALUES
    ('twin', 'STDIO', 'npx', ARRAY['-y', '@modelcontextprotocol/server-everything'],
     '{"npm_config_prefer_offline": "true", "E2E_ACCOUNT": "second"}');
\endif

-- A server that ignores SIGTERM and the end of its input (stubborn-server/server.js).
\if :stubborn
INSERT INTO mcp_servers (name, type, command, args, env) VALUES
    ('stubborn', 'STDIO', 'npx', ARRAY['-y', :'stubborn_dir'],
     '{"npm_config_prefer_offline": "true"}');
\endif

-- A Python server through uvx: uv -> python, and Python moves its own stdin.
\if :time
INSERT INTO mcp_servers (name, type, command, args, env) VALUES
    ('time', 'STDIO', 'uvx', ARRAY['mcp-server-time@2026.10.19'], '{}');
\endif

INSERT INTO namespace_server_mappings (namespace_uuid, mcp_server_uuid, status)
SELECT n.uuid, s.uuid, 'ACTIVE' FROM namespaces n CROSS JOIN mcp_servers s WHERE n.name = 'e2e';
