from dllabs.cli import train
from dllabs.entry import hydra_main

if __name__ == "__main__":
    hydra_main(train, "train")
