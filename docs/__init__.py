"""The documentation site's sources (mkdocs.yml); `docs.gen` writes its generated pages."""
