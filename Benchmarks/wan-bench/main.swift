import WanRuntime
print("wan-bench")
