import requests
import json
import time

# Define the base URLs and payloads
limitations_url = "http://192.168.200.12:8333/supervisor/secc/EVIS_B_CHA/update/limitations"
command_url = "http://192.168.200.12:8333/supervisor/secc/EVIS_B_CHA/update/command"
sleep_time = 5  # Global sleep time between ramp steps
step_size = 500  # Step size in Watt for ramps

base_payload_discharge = {
    "max_dc_discharge_voltage": 500,
    "max_dc_charge_current": 100,
    "max_ac_charge_current": 100,
    "max_dc_charge_power": 1000,
    "max_dc_discharge_current": 100,
    "max_dc_charge_voltage": 500,
    "max_ac_discharge_current": 100
}

base_payload_charge = {
    "max_dc_discharge_voltage": 500,
    "max_dc_charge_current": 100,
    "max_dc_discharge_power": 100,
    "max_dc_charge_power": 1000,
    "max_dc_discharge_current": 100,
    "max_dc_charge_voltage": 500,
    "max_ac_discharge_current": 100,
    "max_ac_charge_current": 100,
}

command_payload_discharge = {
    "interface": 2,
    "request_code": 3,
    "discharge_compatible": True,
    "discharge_mode": True,
    "dynamic_mode": True,
    "imd_external": False,
    "imd_state": 0
}

command_payload_charge = {
    "interface": 2,
    "request_code": 3,
    "discharge_compatible": True,
    "discharge_mode": False,
    "dynamic_mode": True,
    "imd_external": False,
    "imd_state": 0
}

# Set up basic authentication (replace with your actual credentials)
username = "user"
password = "pass"
auth = (username, password)

current_power = 1
target_power = 22500
while current_power <= target_power:
    payload = base_payload_discharge.copy()
    payload["max_dc_discharge_power"] = current_power
    try:
        # Update limitations
        response_limitations = requests.put(limitations_url, json=payload, auth=auth)
        if response_limitations.status_code == 200:
            print(f"Updated max_dc_discharge_power to {current_power}")
        else:
            print(f"Limitations request failed with status code {response_limitations.status_code}")
        # Send command payload
        response_command = requests.put(command_url, json=command_payload_discharge, auth=auth)
        if response_command.status_code == 200:
            print("Command request successful!")
        else:
            print(f"Command request failed with status code {response_command.status_code}")
    except requests.RequestException as e:
        print(f"Error: {e}")
    current_power += step_size
    time.sleep(sleep_time)  # Sleep before the next iteration

current_power = 22500
target_power_down = 1
while current_power >= target_power_down:
    payload = base_payload_discharge.copy()
    payload["max_dc_discharge_power"] = current_power
    try:
        # Update limitations
        response_limitations = requests.put(limitations_url, json=payload, auth=auth)
        if response_limitations.status_code == 200:
            print(f"Updated max_dc_discharge_power to {current_power}")
        else:
            print(f"Limitations request failed with status code {response_limitations.status_code}")
        # Send command payload
        response_command = requests.put(command_url, json=command_payload_discharge, auth=auth)
        if response_command.status_code == 200:
            print("Command request successful!")
        else:
            print(f"Command request failed with status code {response_command.status_code}")
    except requests.RequestException as e:
        print(f"Error: {e}")
    current_power -= step_size
    time.sleep(sleep_time)  # Sleep before the next iteration

current_power = 1
target_power = 22500
time.sleep(sleep_time)  # Give it a few ekstra seconds to change current direction
while current_power <= target_power:
    payload = base_payload_charge.copy()
    payload["max_dc_charge_power"] = current_power
    try:
        # Update limitations
        response_limitations = requests.put(limitations_url, json=payload, auth=auth)
        if response_limitations.status_code == 200:
            print(f"Updated max_dc_charge_power to {current_power}")
        else:
            print(f"Limitations request failed with status code {response_limitations.status_code}")
        # Send command payload
        response_command = requests.put(command_url, json=command_payload_charge, auth=auth)
        if response_command.status_code == 200:
            print("Command request successful!")
        else:
            print(f"Command request failed with status code {response_command.status_code}")
    except requests.RequestException as e:
        print(f"Error: {e}")
    current_power += step_size
    time.sleep(sleep_time)  # Sleep before the next iteration

current_power = 22500
target_power_down = 1
while current_power >= target_power_down:
    payload = base_payload_charge.copy()
    payload["max_dc_charge_power"] = current_power
    try:
        # Update limitations
        response_limitations = requests.put(limitations_url, json=payload, auth=auth)
        if response_limitations.status_code == 200:
            print(f"Updated max_dc_charge_power to {current_power}")
        else:
            print(f"Limitations request failed with status code {response_limitations.status_code}")
        # Send command payload
        response_command = requests.put(command_url, json=command_payload_charge, auth=auth)
        if response_command.status_code == 200:
            print("Command request successful!")
        else:
            print(f"Command request failed with status code {response_command.status_code}")
    except requests.RequestException as e:
        print(f"Error: {e}")
    current_power -= step_size
    time.sleep(sleep_time)  # Sleep before the next iteration
