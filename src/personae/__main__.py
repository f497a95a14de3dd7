from personae.cli import console_main

console_main()
