from dllabs.cli import train_main

if __name__ == "__main__":
    train_main()
