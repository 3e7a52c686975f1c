"""The workspace: the only place that resolves user paths (`paths.resolve_inside`), plus file
operations (`manager.WorkspaceManager`) and script runs (`scripts.ScriptRunner`) confined to it."""
