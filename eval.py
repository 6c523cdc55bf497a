from dllabs.entry import hydra_main
from dllabs.evaluate import evaluate

if __name__ == "__main__":
    hydra_main(evaluate, "eval")
