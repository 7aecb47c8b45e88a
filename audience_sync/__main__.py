from audience_sync.cli import main

main()
