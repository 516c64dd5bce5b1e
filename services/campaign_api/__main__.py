from campaign_api.app import main

main()
