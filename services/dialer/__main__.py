from dialer.app import main

main()
