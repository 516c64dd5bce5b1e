from disposition.app import main

main()
