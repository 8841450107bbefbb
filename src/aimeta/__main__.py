from aimeta.cli import main

main()
