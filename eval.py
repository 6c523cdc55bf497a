from dllabs.cli import eval_main

if __name__ == "__main__":
    eval_main()
