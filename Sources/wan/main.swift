import WanRuntime
print("wan")
