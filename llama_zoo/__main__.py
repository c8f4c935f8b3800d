from llama_zoo.cli import main

main()
