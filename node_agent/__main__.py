from node_agent.agent import main

raise SystemExit(main())
