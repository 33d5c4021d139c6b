from llmarch_lsp.cli import main

raise SystemExit(main())
