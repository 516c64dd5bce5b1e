from webhook.app import main

main()
