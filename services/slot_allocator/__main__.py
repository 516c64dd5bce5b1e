from slot_allocator.app import main

main()
