from task_planner.app import main

main()
