from tirl.cli.main import main

main()
